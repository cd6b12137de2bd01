"""Market-data providers and the PostgreSQL loader. No Airflow imports here."""
