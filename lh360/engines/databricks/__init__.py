"""The Databricks engine: steps as one-time runs of lh360's Spark job (engine.py), what is sent
(requests.py), the job code (code.py), the SDK client and polling (client.py), idempotency tokens
(journal.py), reading runs (results.py), what bronze holds (landing_state.py), `plan` (explain.py) and
`deploy` (deploy.py). The SDK is imported only inside functions: `lh360 --help` stays fast."""

from lh360.engines.databricks.engine import DatabricksEngine

__all__ = ["DatabricksEngine"]
