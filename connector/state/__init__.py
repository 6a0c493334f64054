"""State stores: what the sync engine remembers between runs, and where.

- :mod:`connector.state.base`: record types, the held lock, safe key rules;
- :mod:`connector.state.store`: ``StateStore`` (every rule, once) and ``StoreCallBudget``;
- :mod:`connector.state.backend`: the ``StorageBackend`` seam it stands on;
- :mod:`connector.state.local` / :mod:`connector.state.blob`: a directory and Azure Blob
  Storage as backends, with ``LocalStateStore`` / ``BlobStateStore`` to build a store;
- :mod:`connector.state._codec`: the streamed record index and payload file formats.
"""
