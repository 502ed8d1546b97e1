"""The metadata store: SQLAlchemy 2 async Core, Alembic migrations."""
