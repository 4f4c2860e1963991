"""What one does with a trained run: compare it with others (more of eval, encode / decode,
bench, render, import and export move here as they are reworked)."""
