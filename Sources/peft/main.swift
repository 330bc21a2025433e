print("peft")
