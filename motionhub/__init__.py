"""motionhub: train motion tokenizers (encoder -> quantizer -> decoder) from one YAML recipe.

Plugins implement hooks with ``@motionhub.hookimpl``; see ``motionhub.plugins.hookspecs``.
"""

from motionhub.plugins.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
