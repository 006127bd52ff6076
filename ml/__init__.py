"""The torch side of the market: data, the split model, updates, attacks, multi-Krum, MO/DO roles."""
