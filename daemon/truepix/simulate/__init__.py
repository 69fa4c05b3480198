"""Simulation of the photographic process, as plain numpy functions (no hidden state, explicit ``rng``).

Modules, one purpose each:

* ``filters``  -- FFT convolution with reflect padding, area downsampling, bilinear sampling;
* ``special``  -- the Bessel function J1 (pure numpy);
* ``optics``   -- diffraction (Airy), defocus, aberration PSFs, field-dependent blur, lateral CA;
* ``olpf``     -- the 4-dot optical low-pass filter;
* ``cfa``      -- Bayer mosaics, packing into R/G1/G2/B planes, bilinear demosaicing;
* ``sensor``   -- exposure, shot and read noise, raw quantisation;
* ``jpeg``     -- JPEG round trips through Pillow;
* ``camera``   -- camera profiles (sensor and lens parameters) and their random family;
* ``pipeline`` -- the teacher/student degradation used for training and evaluation.

Images are float arrays (H, W, 3) RGB or (H, W), nominally 0..1.
"""

from truepix.simulate import camera, cfa, filters, jpeg, olpf, optics, pipeline, sensor, special

__all__ = ["camera", "cfa", "filters", "jpeg", "olpf", "optics", "pipeline", "sensor", "special"]
