"""Development only: the Kandji and Oomnitza emulators that `make run`, the tests and `make bench` talk
to. Not shipped: neither in the wheel nor in the image (.dockerignore)."""
