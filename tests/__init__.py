"""The test suite: `unit/` without a server, `integration/` against one real tritonserver per session."""
