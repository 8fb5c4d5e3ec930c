"""`format:` name in a vertical YAML → parser. A new format is one function here (see docs/verticals.md)."""

from __future__ import annotations

from domainlm.data.sources import chemistry, generic, medical

FORMATS = {
    "qa_jsonl": generic.qa_jsonl,                       # {"id","lang","topic","question","answer"}
    "chat_jsonl": generic.chat_jsonl,                   # {"messages": [...]} (ChemLit-QA finetune sets)
    "alpaca_json": generic.alpaca_json,                 # JSON array of {instruction,input,output}
    "alpaca_jsonl": generic.alpaca_jsonl,               # JSONL of {instruction,input,output} (Huatuo)
    "role_prompt_alpaca_json": generic.role_prompt_alpaca_json,  # ChatDoctor: instruction is a role prompt
    "medquad_jsonl": medical.medquad_jsonl,             # MedQuAD shards
    "huatuo_dialogue_json": medical.huatuo_dialogue_json,  # Huatuo liver_cancer multi-turn
    "toyhom_csv": medical.toyhom_csv,                   # Toyhom CSV, GB18030
    "chemlit_csv": chemistry.chemlit_csv,               # ChemLit-QA CSV splits (chunk, Question, Answer)
}
