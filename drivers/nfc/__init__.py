"""The PN532 NFC reader (HSU), its frames and NDEF decoding, and a simulated PN532 on a pty.

Import :mod:`drivers.nfc.pn532` for the reader and :mod:`drivers.nfc.sim` for the fake; this
package module imports neither, so naming it costs nothing on a gate without pyserial.
"""
