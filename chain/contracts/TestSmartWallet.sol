// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title TestSmartWallet
/// @notice A minimal smart-contract wallet for passgate's tests of EIP-1271 sign-in: one owner,
/// and a signature is the wallet's when the owner signed the hash (ECDSA, 65 bytes).
/// Not for production use.
contract TestSmartWallet {
    bytes4 internal constant MAGIC_VALUE = 0x1626ba7e; // isValidSignature(bytes32,bytes)
    bytes4 internal constant INVALID = 0xffffffff;

    address public immutable owner;

    constructor(address owner_) {
        owner = owner_;
    }

    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (signature.length != 65) {
            return INVALID;
        }
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) {
            v += 27;
        }
        address signer = ecrecover(hash, v, r, s);
        return signer != address(0) && signer == owner ? MAGIC_VALUE : INVALID;
    }
}

/// @title TestSmartWalletFactory
/// @notice Deploys TestSmartWallets with CREATE2, so a wallet's address is known before it
/// exists: the counterfactual wallets of EIP-6492. Not for production use.
contract TestSmartWalletFactory {
    function deploy(address owner, bytes32 salt) external returns (address) {
        return address(new TestSmartWallet{salt: salt}(owner));
    }
}
