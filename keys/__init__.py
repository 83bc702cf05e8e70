"""Issuer side: key pairs, trust bundles, minting and rendering tickets, revocation lists."""
