"""Real-time ingestion of e-commerce orders and payments from Pub/Sub into Cassandra."""
