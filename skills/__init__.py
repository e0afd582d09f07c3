"""The shipped skills, one folder each with a SKILL.md (Agent Skills format), shipped as package
data so an installed wheel loads them (`importlib.resources.files("skills")`). The loader in
`tools/skills.py` treats them exactly like a user's skill folders."""
