"""The station domain: vocabulary, opening hours, stores and importers. No Flask here."""
