"""Athena: checks and ad-hoc SQL on the lake's Delta tables through Glue (query.py), and the Glue
registration `lh360 deploy` does for them (glue.py). boto3 and pyathena are imported inside functions."""
