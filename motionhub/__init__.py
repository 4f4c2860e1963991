"""motionhub: train motion tokenizers (encoder -> quantizer -> decoder) from one YAML recipe.

Plugins implement hooks with ``@motionhub.hookimpl``; see ``motionhub.plugins.hookspecs``.
"""

from motionhub.plugins.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl", "load_tokenizer"]


def __getattr__(name: str):
    # ``from motionhub import load_tokenizer`` imports torch only when it is asked for.
    if name == "load_tokenizer":
        from motionhub.use.package import load_tokenizer

        return load_tokenizer
    raise AttributeError(f"module 'motionhub' has no attribute '{name}'")
