"""The command line: a typer app over the layers."""
