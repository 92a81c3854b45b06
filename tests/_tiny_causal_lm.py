"""A tiny random Llama with SmolLM2's tokenizer, wrapped as a `CausalLM`: the code paths of
rmcourse.generative at a fraction of the cost (used by the chapter-07 module tests)."""
import torch


def make_tiny_lm():
    from transformers import LlamaConfig, LlamaForCausalLM

    from rmcourse.generative import CausalLM
    from rmcourse.models import load_tokenizer

    tok = load_tokenizer("smollm2")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config).eval()
    return CausalLM(model=model, tokenizer=tok, device=torch.device("cpu"), bf16=False, name="tiny",
                    sha256="0" * 64)


def make_tiny_llama(num_hidden_layers: int = 3):
    """(a random Llama of `num_hidden_layers` blocks, SmolLM2's tokenizer): the DPO and explicit-RM
    tests train its top blocks (seeded, fresh on each call)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from rmcourse.models import load_tokenizer

    tok = load_tokenizer("smollm2")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=num_hidden_layers, num_attention_heads=4, num_key_value_heads=2,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval(), tok
