"""The camera: OpenCV capture of the newest frame, QR decoders, GT1 presentations.

- :mod:`drivers.camera.reader`: :class:`CameraReader`, the :class:`~drivers.base.CodeReader`;
- :mod:`drivers.camera.capture`: the grabber thread that keeps only the newest frame;
- :mod:`drivers.camera.decoders`: the decoder interface, zxing-cpp and pyzbar, by name;
- :mod:`drivers.camera.scan`: codes in image files (``gatectl scan-image``);
- :mod:`drivers.camera.fake`: frames and video files with codes, for tests and simulation.

Nothing is imported here, so naming the package costs nothing on a gate without OpenCV.
"""
