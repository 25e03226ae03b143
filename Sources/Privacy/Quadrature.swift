// Adaptive Gauss–Kronrod quadrature (the 10/21-point pair of QUADPACK), for the PRV accountant's mean.

import Foundation

enum Quadrature {
    /// Kronrod nodes x_k on [−1, 1] (k = 0…9 mirrored, 10 is the centre); odd k are the 10-point Gauss nodes.
    private static let nodes: [Double] = [
        0.995657163025808080735527280689003, 0.973906528517171720077964012084452,
        0.930157491355708226001207180059508, 0.865063366688984510732096688423493,
        0.780817726586416897063717578345042, 0.679409568299024406234327365114874,
        0.562757134668604683339000099272694, 0.433395394129247190799265943165784,
        0.294392862701460198131126603103866, 0.148874338981631210884826001129720,
        0.0,
    ]
    /// Kronrod weights of `nodes`.
    private static let kronrodWeights: [Double] = [
        0.011694638867371874278064396062192, 0.032558162307964727478818972459390,
        0.054755896574351996031381300244580, 0.075039674810919952767043140916190,
        0.093125454583697605535065465083366, 0.109387158802297641899210590325805,
        0.123491976262065851077208067017397, 0.134709217311473325928054001771707,
        0.142775938577060080797094273138717, 0.147739104901338491374841515972068,
        0.149445554002916905664936468389821,
    ]
    /// Gauss weights of nodes 1, 3, 5, 7, 9.
    private static let gaussWeights: [Double] = [
        0.066671344308688137593568809893332, 0.149451349150580593145776339657697,
        0.219086362515982043995534934228163, 0.269266719309996355091226921569469,
        0.295524224714752870173892994651338,
    ]

    /// The 21-point Kronrod estimate of ∫_a^b f and its difference from the embedded 10-point Gauss rule.
    private static func kronrod21(_ f: (Double) -> Double, _ a: Double, _ b: Double) -> (value: Double, error: Double) {
        let centre = 0.5 * (a + b), halfLength = 0.5 * (b - a)
        let fc = f(centre)
        var kronrod = fc * kronrodWeights[10], gauss = 0.0
        for k in 0..<10 {
            let dx = halfLength * nodes[k]
            let pair = f(centre - dx) + f(centre + dx)
            kronrod += kronrodWeights[k] * pair
            if k % 2 == 1 { gauss += gaussWeights[k / 2] * pair }
        }
        return (kronrod * halfLength, abs((kronrod - gauss) * halfLength))
    }

    /// ∫_a^b f by recursive bisection until each piece's Kronrod–Gauss difference is within
    /// max(absolute, relative·|piece|), or the depth limit.
    static func integrate(_ f: (Double) -> Double, from a: Double, to b: Double,
                          absoluteTolerance: Double = 1e-15, relativeTolerance: Double = 1e-13,
                          maxDepth: Int = 48) -> Double {
        func piece(_ a: Double, _ b: Double, _ depth: Int) -> Double {
            let (value, error) = kronrod21(f, a, b)
            if error <= max(absoluteTolerance, relativeTolerance * abs(value)) || depth >= maxDepth || b - a < 1e-300 {
                return value
            }
            let m = 0.5 * (a + b)
            return piece(a, m, depth + 1) + piece(m, b, depth + 1)
        }
        return piece(a, b, 0)
    }
}
