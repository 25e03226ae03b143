// The generator of Alignment's random choices (pseudo-labels, test data).

import Tensors

/// SplitMix64; the same seed gives the same stream on every platform.
public typealias AlignmentRandom = SplitMix64
