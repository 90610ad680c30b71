"""The self-hosted Restate node's boot script and configuration files."""
