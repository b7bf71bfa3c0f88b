from triton_llm.generation.engines.hf.budget import MIN_PIECE, next_group, pass_cap


def test_without_decoding_rows_or_a_budget_a_pass_is_bounded_by_the_cap_alone():
    assert pass_cap(2048, 512, decoding=0) == 2048
    assert pass_cap(2048, 0, decoding=15) == 2048
    assert pass_cap(None, 0, decoding=15) is None


def test_decoding_rows_share_the_budget_never_below_a_block_nor_above_the_cap():
    assert pass_cap(2048, 512, decoding=1) == 512
    assert pass_cap(2048, 512, decoding=16) == 32
    assert pass_cap(2048, 512, decoding=64) == MIN_PIECE
    assert pass_cap(256, 512, decoding=1) == 256
    assert pass_cap(None, 512, decoding=2) == 256


def test_a_queue_behind_the_joining_prompt_is_served_at_the_cap():
    assert pass_cap(2048, 512, decoding=16, queued=1) == 2048
    assert pass_cap(2048, 512, decoding=16, queued=0) == 32


def test_a_group_is_the_longest_run_in_arrival_order_whose_padded_size_fits():
    assert next_group([4, 4, 4, 4, 6, 3], room=16, cap=16, to_prefill=len_of) == [4, 4, 4, 4]
    assert next_group([6, 3], room=16, cap=16, to_prefill=len_of) == [6, 3]
    assert next_group([40, 3], room=16, cap=16, to_prefill=len_of) == [40]  # over the cap alone: pieces
    assert next_group([4, 4, 4], room=2, cap=16, to_prefill=len_of) == [4, 4]  # no more than the free rows
    assert next_group([4, 4, 4], room=2, cap=None, to_prefill=len_of) == [4, 4]


def len_of(n: int) -> int:
    return n
