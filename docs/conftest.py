"""pytest: nothing under docs/ is collected directly; tests/docs runs the page examples and builds."""

collect_ignore = ["conf.py", "_ext", "examples"]
