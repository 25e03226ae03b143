// MPICommunicator as a singleton (world size 1): every collective works and returns its input.

@testable import Distributed
import Foundation
import XCTest

/// MPI initialises once per process and never again after finalizing: these tests share the world
/// instance, restore its settings, and never call `MPICommunicator.finalize()`.
final class MPICommunicatorTests: XCTestCase {
    private var world: MPICommunicator!
    private var savedTimeout: TimeInterval?

    override func setUpWithError() throws {
        world = try MPICommunicator.world()
        savedTimeout = world.collectiveTimeout
    }

    override func tearDown() {
        world.collectiveTimeout = savedTimeout
        world.maxElementsPerCall = Int(Int32.max)
    }

    func testWorldIsASharedSingleton() throws {
        XCTAssertTrue(try MPICommunicator.world() === world)
        XCTAssertEqual(world.rank, 0)
        XCTAssertEqual(world.size, 1)
        XCTAssertTrue(world.isRoot)
        XCTAssertEqual(world.hostnames.count, 1)
        XCTAssertFalse(world.hostnames[0].isEmpty)
        XCTAssertNotNil(world.collectiveTimeout, "the timeout is on by default")
    }

    /// Every collective of the protocol, in each mode: timed (non-blocking and polled), blocking,
    /// and timed with every buffer split into 3-element MPI calls.
    func testEveryCollectiveIsIdentityOnOneRank() throws {
        for (mode, timeout, limit) in [("timed", 30, Int(Int32.max)), ("blocking", nil, Int(Int32.max)), ("chunked", 30, 3)] as [(String, TimeInterval?, Int)] {
            world.collectiveTimeout = timeout
            world.maxElementsPerCall = limit

            var floats = (0..<10).map { Float($0) - 2.5 }
            let original = floats
            try world.allReduceSum(&floats)
            XCTAssertEqual(floats, original, mode)
            try world.allReduceMean(&floats)
            XCTAssertEqual(floats, original, mode)
            try world.broadcast(&floats, root: 0)
            XCTAssertEqual(floats, original, mode)

            var doubles = [1.5, -2, 1e300]
            try world.allReduceSum(&doubles)
            XCTAssertEqual(doubles, [1.5, -2, 1e300], mode)
            try world.allReduceMax(&doubles)
            XCTAssertEqual(doubles, [1.5, -2, 1e300], mode)
            var none: [Double] = []
            try world.allReduceSum(&none)
            XCTAssertEqual(none, [], mode)

            var bytes = Array("0123456789".utf8)
            try world.broadcast(&bytes, root: 0)
            XCTAssertEqual(bytes, Array("0123456789".utf8), mode)
            var empty: [UInt8] = []
            try world.broadcast(&empty, root: 0)
            XCTAssertEqual(empty, [], mode)

            XCTAssertEqual(try world.gather(Array("seven b".utf8), root: 0), [Array("seven b".utf8)], mode)
            XCTAssertEqual(try world.gather([], root: 0), [[]], mode)
            XCTAssertEqual(try world.allGather([1, 2, 3, 4, 5]), [[1, 2, 3, 4, 5]], mode)
            XCTAssertEqual(try world.allGather([]), [[]], mode)
            try world.barrier()

            XCTAssertEqual(try world.broadcastString("x: ✓"), "x: ✓", mode)
            XCTAssertEqual(try world.broadcastValue([1, 2, 3]), [1, 2, 3], mode)
            XCTAssertEqual(try world.allReduceSum(2.5), 2.5, mode)
        }
    }

    func testLargeSlabAllReduce() throws {
        var slab = (0..<(1 << 20)).map { Float($0 % 1000) }
        let original = slab
        try world.allReduceSum(&slab)
        XCTAssertEqual(slab, original)
    }

    func testInvalidArgumentsThrowWithTheCallSite() {
        var bytes: [UInt8] = [1]
        XCTAssertThrowsError(try world.broadcast(&bytes, root: 1)) { error in
            guard case CommunicatorError.invalidArgument(let call, let message) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(call, "broadcast(_: inout [UInt8], root:)")
            XCTAssertTrue(message.contains("root 1"), message)
        }
        XCTAssertThrowsError(try world.gather([], root: -1))
        var floats: [Float] = [1]
        XCTAssertThrowsError(try floats.withUnsafeMutableBufferPointer { try world.allReduceSum($0.baseAddress!, count: -1) })
    }

    func testMPIErrorsCarryTheErrorString() {
        let text = MPICommunicator.errorString(3)   // MPI_ERR_TYPE in Open MPI
        XCTAssertFalse(text.isEmpty)
        let error = CommunicatorError.mpi(call: "MPI_Iallreduce", site: "allReduceSum(_:count:)", code: 3, message: text)
        XCTAssertTrue(error.description.hasPrefix("MPI_Iallreduce in allReduceSum(_:count:): \(text)"), error.description)
    }
}
