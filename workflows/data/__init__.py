"""The data types that cross the Temporal boundary (workflow inputs and results, activity arguments, signals) and
the workflow type names: what services and activities may import without importing a workflow."""
