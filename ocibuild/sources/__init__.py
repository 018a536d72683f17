"""Sources a build reads from outside its context: git repositories."""
