"""Local servers that follow each platform's documented API contract, for tests."""
