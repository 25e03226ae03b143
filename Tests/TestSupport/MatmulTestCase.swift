// A test case whose failures name the matrix backend they ran under. The suites that run matrix
// products (kernels, the PyTorch twin, generation, real-model parity) derive from it, and
// launch/test.sh runs them once per backend that can run here (DUALIGN_MATMUL=openblas|onednn|blis):
// the products are the only code that differs between backends, so only those suites are repeated.

import Foundation
import Tensors
import XCTest

open class MatmulTestCase: XCTestCase {
    override open func recordFailure(withDescription description: String, inFile filePath: String, atLine lineNumber: Int,
                                     expected: Bool) {
        super.recordFailure(withDescription: "[matmul \(Matmul.backend)] " + description, inFile: filePath, atLine: lineNumber,
                            expected: expected)
    }
}
