"""SQLModel tables and the schemas that cross boundaries."""
