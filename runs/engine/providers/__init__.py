"""LLM providers behind one protocol: Anthropic, OpenAI (and OpenAI-compatible servers),
and a scripted provider for the demo and tests."""
