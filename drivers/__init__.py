"""Hardware drivers: cameras and QR decoders, serial scanners, NFC readers, GPIO."""
