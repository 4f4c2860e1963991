"""Phase-Functioned Neural Network (PFNN) training data and the released network's forward pass."""
