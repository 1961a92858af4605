# A stand-in for a libtorch of another version, for packaging.torch_mismatch_stops_configure.
set(TORCH_LIBRARIES "")
