"""`lh360 demo`: a deterministic, realistic `clientes` landing zone (generator.py, with its reference data in
data/reference.json) and the pipeline run on it (run.py)."""
