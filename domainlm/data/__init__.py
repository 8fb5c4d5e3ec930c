"""Raw rows → chat messages → token ids + loss mask; packing; validation; which datasets may be trained on."""
