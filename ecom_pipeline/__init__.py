"""Real-time ingestion of e-commerce orders and payments from Pub/Sub into Cassandra."""

__version__ = "0.2.0"
