"""Great Expectations suites and the checkpoint runner that gates tables before use.

No Airflow imports, and no module-level import of great_expectations: it takes seconds
to import, so it is loaded only when a suite is built or a checkpoint runs.
"""
