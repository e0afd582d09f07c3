"""The agent's jinja2 templates, shipped as package data so an installed wheel finds them
(`importlib.resources.files("prompts")`), not only a source checkout."""
