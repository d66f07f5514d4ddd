"""Widgets of the viewer (no engine calls here: data comes prepared from the worker)."""
