"""The package version, in a module of its own: the run directory records it, and importing the
package face for it would import upwards."""

__version__ = "0.1.0"
