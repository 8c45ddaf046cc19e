"""Web demo: upload an image, type expressions, see their masks (needs the ``demo`` extra: gradio)."""

from risam.demo.app import DemoBackend, build_demo, launch_demo

__all__ = ["DemoBackend", "build_demo", "launch_demo"]
