// The accountants' saved state: JSON round trips, resume equivalence, and typed errors for a state of
// another mechanism or a malformed history.

import Foundation
import XCTest
@testable import Privacy

final class AccountantStateTests: XCTestCase {
    private let history = [
        PrivacySegment(noiseMultiplier: 1.1, sampleRate: 0.01, steps: 400),
        PrivacySegment(noiseMultiplier: 0.9, sampleRate: 0.02, steps: 100),
    ]

    func testStateIsOpacusStateDictShape() throws {
        let accountant = try RDPAccountant(history: history)
        let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(accountant)) as? [String: Any]
        XCTAssertEqual(object?["mechanism"] as? String, "rdp")
        let first = (object?["history"] as? [[String: Any]])?.first
        XCTAssertEqual(first?["noise_multiplier"] as? Double, 1.1)
        XCTAssertEqual(first?["sample_rate"] as? Double, 0.01)
        XCTAssertEqual(first?["steps"] as? Int, 400)
    }

    func testEveryAccountantRoundTripsAndResumesToTheSameEpsilon() throws {
        for mechanism in AccountantMechanism.allCases {
            var whole = try makeAccountant(mechanism)
            var part = try makeAccountant(mechanism)
            for segment in history {
                try whole.step(noiseMultiplier: segment.noiseMultiplier, sampleRate: segment.sampleRate, steps: segment.steps)
            }
            try part.step(noiseMultiplier: 1.1, sampleRate: 0.01, steps: 250)
            let saved = try JSONEncoder().encode(part.state)
            var resumed = try makeAccountant(mechanism, history: JSONDecoder().decode(AccountantState.self, from: saved).history)
            try resumed.step(noiseMultiplier: 1.1, sampleRate: 0.01, steps: 150)
            for _ in 0..<100 { try resumed.step(noiseMultiplier: 0.9, sampleRate: 0.02) }
            XCTAssertEqual(resumed.history, history, "\(mechanism): history after resume")
            XCTAssertEqual(try resumed.epsilon(delta: 1e-5), try whole.epsilon(delta: 1e-5), "\(mechanism): ε after resume")
        }
    }

    func testTypedDecodeRoundTrip() throws {
        let prv = try PRVAccountant(history: history)
        let decoded = try JSONDecoder().decode(PRVAccountant.self, from: JSONEncoder().encode(prv))
        XCTAssertEqual(decoded.history, prv.history)
    }

    func testStateOfAnotherMechanismIsRefused() throws {
        let data = try JSONEncoder().encode(try RDPAccountant(history: history))
        XCTAssertThrowsError(try JSONDecoder().decode(GDPAccountant.self, from: data)) { error in
            let privacyError = error as? PrivacyError
            XCTAssertEqual(privacyError?.kind, .mechanismMismatch, "\(error)")
            XCTAssert(privacyError?.message.contains("rdp history") == true, "names the saved mechanism: \(error)")
        }
        let state = try JSONDecoder().decode(AccountantState.self, from: data)
        XCTAssertThrowsError(try PRVAccountant(state: state)) { error in
            XCTAssertEqual((error as? PrivacyError)?.kind, .mechanismMismatch, "\(error)")
        }
    }

    func testMalformedStatesAreTypedErrors() {
        let cases: [(String, String)] = [
            ("{}", "mechanism"),
            ("[1, 2]", "accountant state"),
            (#"{"mechanism": "rdp"}"#, "history"),
            (#"{"mechanism": "moments", "history": []}"#, "mechanism"),
            (#"{"mechanism": "rdp", "history": [{"noise_multiplier": 1.0, "sample_rate": 0.1}]}"#, "history"),
            (#"{"mechanism": "rdp", "history": [{"noise_multiplier": 1.0, "sample_rate": 1.5, "steps": 3}]}"#,
             "history[0].sample_rate"),
            (#"{"mechanism": "prv", "history": [{"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 3}, "#
             + #"{"noise_multiplier": -2.0, "sample_rate": 0.1, "steps": 3}]}"#, "history[1].noise_multiplier"),
            (#"{"mechanism": "gdp", "history": [{"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": -3}]}"#,
             "history[0].steps"),
        ]
        for (json, field) in cases {
            XCTAssertThrowsError(try JSONDecoder().decode(AccountantState.self, from: Data(json.utf8)), json) { error in
                let privacyError = error as? PrivacyError
                XCTAssertEqual(privacyError?.kind, .malformedHistory, "\(json): \(error)")
                XCTAssertEqual(privacyError?.field, field, "\(json): field named")
            }
        }
    }

    func testInvalidStepsAreRefused() {
        var accountant = RDPAccountant()
        XCTAssertThrowsError(try accountant.step(noiseMultiplier: 1, sampleRate: 2)) { error in
            XCTAssertEqual((error as? PrivacyError)?.kind, .invalidParameter, "\(error)")
        }
        XCTAssertThrowsError(try accountant.step(noiseMultiplier: .nan, sampleRate: 0.1))
        XCTAssertThrowsError(try RDPAccountant(history: [PrivacySegment(noiseMultiplier: 1, sampleRate: 0.1, steps: -1)]))
        XCTAssertThrowsError(try RDPAccountant(history: [], orders: [0.5, 2]))
        XCTAssertTrue(accountant.history.isEmpty, "a refused step records nothing")
    }
}
