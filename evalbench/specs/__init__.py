"""Specs: YAML files parsed once into typed, frozen dataclasses."""
