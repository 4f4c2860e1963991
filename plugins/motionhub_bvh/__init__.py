"""BVH motion capture files: a reader for any skeleton and forward kinematics."""
