import Collectives
import Engine
import Methods
import Training
import XCTest

/// The parts of data parallelism that need no second process (the 2-rank runs are in CLITests/DataParallelTests).
final class ProcessGroupTests: XCTestCase {
    func testLaunchedSizeComesFromOpenMPIsEnvironment() throws {
        XCTAssertEqual(try ProcessGroup.launchedSize(environment: [:]), 1)
        XCTAssertEqual(try ProcessGroup.launchedSize(environment: ["OMPI_COMM_WORLD_SIZE": "4"]), 4)
        XCTAssertThrowsError(try ProcessGroup.launchedSize(environment: ["OMPI_COMM_WORLD_SIZE": "many"])) {
            XCTAssertTrue("\($0)".contains("OMPI_COMM_WORLD_SIZE is 'many'"), "\($0)")
        }
        XCTAssertThrowsError(try ProcessGroup.launchedSize(environment: ["PMI_SIZE": "2"])) {
            XCTAssertTrue("\($0)".contains("other than Open MPI"), "\($0)")
        }
    }

    func testAGroupOfOneReturnsItsOwnValues() throws {
        let group = try ProcessGroup.world()  // not started by mpirun: one rank, no MPI
        XCTAssertFalse(group.isDistributed)
        XCTAssertEqual(group.rank, 0)
        XCTAssertEqual(try group.allreduceSum([1.5, -2], what: "test"), [1.5, -2])
        XCTAssertEqual(try group.allreduceMax([3], what: "test"), [3])
        XCTAssertEqual(try group.broadcast([7, 8, 9], what: "test"), [7, 8, 9])
        XCTAssertEqual(try group.allgather([1, 2], what: "test"), [[1, 2]])
        var values: [Float] = [1, 2, 3]
        try values.withUnsafeMutableBufferPointer { try group.allreduceSum($0.baseAddress!, count: 3, what: "test") }
        XCTAssertEqual(values, [1, 2, 3])
    }

    func testThreadsPerProcessShareTheCoresAmongLocalRanks() {
        XCTAssertEqual(Parallel.threadCount(environment: [:], processors: 8), 8)
        XCTAssertEqual(Parallel.threadCount(environment: ["OMPI_COMM_WORLD_LOCAL_SIZE": "2"], processors: 2), 1)
        XCTAssertEqual(Parallel.threadCount(environment: ["OMPI_COMM_WORLD_LOCAL_SIZE": "4"], processors: 16), 4)
        XCTAssertEqual(Parallel.threadCount(environment: ["OMPI_COMM_WORLD_LOCAL_SIZE": "4"], processors: 2), 1)
        XCTAssertEqual(Parallel.threadCount(environment: ["PEFT_THREADS": "3", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"], processors: 2), 3)
        XCTAssertEqual(Parallel.threadCount(environment: ["PEFT_THREADS": "0"], processors: 2), 2, "an invalid value is ignored")
        XCTAssertEqual(Parallel.threadCount(environment: ["PEFT_THREADS": "1000"], processors: 2), 8, "capped at 4 per core")
    }

    /// A rank builds its shard from flips drawn for the whole batch; in one process that must be the very batch
    /// the source makes when it draws them itself, so a single process trains exactly as before.
    func testABatchFromPredrawnFlipsIsTheBatchThatDrawsThem() throws {
        let preprocessor = ImagePreprocessor(resolution: 16, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25])
        let source = ImageBatchSource(split: TinyTrainerFixture.split(16, seed: 4), rows: 8, columns: 8,
                                      preprocessor: preprocessor, flip: true)
        var drawing = RandomGenerator(seed: 11), predrawing = RandomGenerator(seed: 11)
        let indices = Array(0..<16)
        let flips = source.flips(count: 16, augment: true, generator: &predrawing)
        XCTAssertTrue(flips.contains(true) && flips.contains(false), "the seed flips some images, not all")
        guard case .images(let direct) = source.batch(indices, augment: true, generator: &drawing),
              case .images(let predrawn) = (source as BatchSource).batch(indices, flips: flips) else {
            return XCTFail("image batches expected")
        }
        XCTAssertEqual(direct.shape, predrawn.shape)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: direct.data, count: direct.count)),
                       Array(UnsafeBufferPointer(start: predrawn.data, count: predrawn.count)))
    }
}
