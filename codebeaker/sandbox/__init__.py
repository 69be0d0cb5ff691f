"""The Docker side: engine client, hardened container config, drivers, guest helper."""
