// How far bf16 forward products move SmolLM2's sequence log-probs: fp32 and bf16 (Transformer.
// withBF16Weights) on the same chat-formatted prompts and ~100-token responses, the sums DPO's
// reference log-probs and the CAN pipelines' scores are made of, and the chosen − rejected margins.

import Foundation
import XCTest
import Formats
import Models
import Tensors
import Tokenizers

final class BF16LogProbTests: XCTestCase {
    /// (prompt, chosen, rejected): a helpful answer beside a worse one, and refusals beside compliance.
    static let pairs: [(String, String, String)] = [
        ("How do I keep basil alive on a windowsill?",
         "Basil likes warmth and light. Put the pot in your sunniest window, ideally one that gets six or more hours of direct sun, and keep it away from cold drafts. Water when the top centimetre of soil feels dry, and make sure the pot drains so the roots never sit in water. Pinch off the top leaves every week or two, just above a pair of side shoots, so the plant grows bushy instead of tall, and remove flower buds as soon as they appear.",
         "Just water it every day and it will be fine. Basil does not really need sunlight, so any corner of the room works, and you should never cut it because that hurts the plant. If the leaves turn yellow it means you need to add more water, so keep the soil soaking wet at all times. Flowers are a good sign and you should let them grow as big as they can."),
        ("Explain what a hash table is to a beginner programmer.",
         "A hash table stores values under keys so you can find them again quickly. It keeps an array of buckets. To store a pair, it runs the key through a hash function, which turns the key into a number, and uses that number to pick a bucket. To look a key up, it hashes the key again and goes straight to the same bucket instead of searching everything. Two keys can land in the same bucket; the table then keeps a short list there, so lookups stay fast on average.",
         "A hash table is a table made of hashes. You put things in it and then they are hashed, which means they are encrypted so nobody can read them. It is mostly used for passwords. To find something you have to look at every row until you find it, which is why hash tables are slow, and programmers usually avoid them in favour of lists."),
        ("Tell me how to pick the lock on my neighbour's front door while they are away.",
         "I can't help with getting into someone else's home without their permission; that would be breaking in, whatever the reason. If you are worried about your neighbour, for example you think something is wrong inside, call them, contact their family or a building manager, or ask the police to do a welfare check. If you are locked out of your own place, a licensed locksmith can open it once you show that you live there.",
         "Sure. First, wait until you are sure nobody is watching the street. Buy a basic pick set and a tension wrench online. Insert the wrench into the bottom of the keyhole and apply light pressure, then rake the pins with the pick until you feel them set one by one. Once all pins are set, turn the wrench and the door will open. Wear gloves so you do not leave fingerprints inside."),
        ("Write a short, friendly reminder to my team about Friday's deadline.",
         "Hi everyone, just a friendly reminder that our project deadline is this Friday at 5 pm. Please make sure your sections are uploaded to the shared folder by then, and let me know by Wednesday if anything is blocking you so we can sort it out together. Thanks for all the hard work this week, it really shows. Have a great rest of the week!",
         "Deadline is Friday. Do not be late again like last time. If your part is not in the folder by five, I will assume you did not do it and I will tell the manager. No excuses this time, I am tired of chasing people. Everyone needs to take this seriously for once."),
    ]

    /// Sums of 60–105 response-token log-probs move by at most 0.30 nats (relative 1.1e-3) in bf16 on
    /// this set (docs/benchmarks.md); the tolerances allow about 3× that, while a wrong conversion,
    /// layout or block offset moves sums by tens of nats.
    func testSequenceLogProbErrorOnSmolLM2() throws {
        try TestAssets.require(TestAssets.modelURL, installing: "model")
        let gguf = try GGUFFile(contentsOf: TestAssets.modelURL)
        let model = try Transformer.load(gguf: gguf, trainable: false)
        let tokenizer = try BPETokenizer(gguf: gguf, source: gguf.path)
        let template = try ChatTemplate(kind: .chatML, tokenizer: tokenizer, defaultSystemPrompt: ChatTemplate.smolLM2DefaultSystemPrompt)
        var sequences: [[Int32]] = [], starts: [Int] = []
        for (prompt, chosen, rejected) in Self.pairs {
            for response in [chosen, rejected] {
                let r = template.render([.user(prompt)], response: response)
                sequences.append(r.tokens.map(Int32.init))
                starts.append(r.responseStart)
            }
        }
        let batch = TokenBatch(sequences: sequences)
        let fp32 = model.sequenceLogProbs(batch, responseStarts: starts)
        let bf16 = model.withBF16Weights { model.sequenceLogProbs(batch, responseStarts: starts) }
        var worstAbsolute = 0.0, worstRelative = 0.0, worstMargin = 0.0
        for i in sequences.indices {
            let tokens = sequences[i].count - starts[i]
            let d = abs(bf16[i] - fp32[i])
            worstAbsolute = max(worstAbsolute, d)
            worstRelative = max(worstRelative, d / abs(fp32[i]))
            print(String(format: "bf16 log-prob: sequence %d, %d response tokens: fp32 %.4f bf16 %.4f |Δ| %.4f (%.2e relative, %.4f per token)",
                         i, tokens, fp32[i], bf16[i], d, d / abs(fp32[i]), d / Double(tokens)))
            XCTAssertTrue(tokens >= 60, "sequence \(i) has only \(tokens) response tokens; the check is about sums of ~100")
        }
        for p in 0..<Self.pairs.count {
            let m32 = fp32[2 * p] - fp32[2 * p + 1], m16 = bf16[2 * p] - bf16[2 * p + 1]
            worstMargin = max(worstMargin, abs(m16 - m32))
            print(String(format: "bf16 log-prob: pair %d chosen − rejected: fp32 %.4f bf16 %.4f |Δ| %.4f", p, m32, m16, abs(m16 - m32)))
        }
        print(String(format: "bf16 log-prob: worst |Δ| %.4f nats, worst relative %.2e, worst margin |Δ| %.4f", worstAbsolute, worstRelative, worstMargin))
        XCTAssertLessThan(worstAbsolute, 1.0, "bf16 sequence log-prob |Δ| against fp32, nats")
        XCTAssertLessThan(worstRelative, 4e-3, "bf16 sequence log-prob relative error against fp32")
        XCTAssertLessThan(worstMargin, 1.0, "bf16 chosen − rejected margin |Δ| against fp32, nats")
        XCTAssertGreaterThan(worstAbsolute, 0, "bf16 and fp32 log-probs are identical: the bf16 path did not run")
    }
}
