// Emulation stand-in for the CUDA runtime header (tests/emulator/gsnn_emulator.h).
#pragma once

#include "gsnn_emulator.h"
