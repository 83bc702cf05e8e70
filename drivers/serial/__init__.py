"""Line-based barcode scanners on a serial port (RS-232 or USB-CDC).

:mod:`drivers.serial.scanner` holds the driver, :class:`~drivers.serial.scanner.SerialScanner`;
:mod:`drivers.serial.fake` holds :class:`~drivers.serial.fake.PtyScanner`, a pretend scanner on
a real pseudo-terminal for tests and simulation. Neither is imported here, so importing the
package costs nothing until a gate actually uses a serial scanner.
"""
