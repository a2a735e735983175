"""The command-line toolkit: shared flags, exit codes and error mapping, one module per command."""
