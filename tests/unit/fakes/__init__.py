"""Stand-ins for what the Triton-side runners meet at run time (the stub's module, an engine),
so that their thread and response rules are tested in seconds, without a tritonserver."""
