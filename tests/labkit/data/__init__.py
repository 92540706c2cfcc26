"""Tests of labkit.data, laid out along its modules: formats, loaders, cache, prepare, datasets."""
