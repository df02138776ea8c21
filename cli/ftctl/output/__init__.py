"""Rendering: everything that turns results into text. Receives plain data, never touches the
network, never decides an exit code."""
